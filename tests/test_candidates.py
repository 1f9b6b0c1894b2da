"""Which positions of a Python file become ``line`` and ``stmt`` tasks (mccom_core.cascade.candidates)."""

from mccom_core.cascade.candidates import (
    Candidate, char_col, line_candidates, source_problem, stmt_candidates,
)

# Line numbers are written beside each line (they are not part of the source).
SOURCE_LINES = [
    '"""Module docstring."""',  # 1  docstring: skipped
    "",  # 2
    "import os",  # 3
    "# a comment",  # 4  comment: skipped
    "",  # 5
    "CONSTANT = {",  # 6
    '    "a": 1,',  # 7  a string that is not a docstring: kept
    "}",  # 8  lone bracket: skipped
    "",  # 9
    "",  # 10
    "def f(x):",  # 11
    '    """Docstring',  # 12 docstring: skipped
    '    over lines."""',  # 13
    "    if x:",  # 14
    "        pass",  # 15 trivial
    "    else:",  # 16 trivial
    "        return None",  # 17
    "    y = compute(",  # 18
    "        x, 2)  # trailing",  # 19
    "    z = 1; w = 2",  # 20
    '    text = """',  # 21
    "inside string",  # 22 inside a string: skipped
    '"""',  # 23
    "    try:",  # 24 trivial
    "        y += 1",  # 25
    "    except ValueError:",  # 26
    "        raise",  # 27 trivial
    "    return y   ",  # 28 trailing spaces are not ground truth
    "",  # 29
    "",  # 30
    "class C:",  # 31
    "    attr = 3",  # 32 (not in a function: no stmt task)
    "",  # 33
    "    def m(self):",  # 34
    "        self.v = [",  # 35
    "            1,",  # 36
    "        ]",  # 37
    '        label = "héllo"',  # 38 non-ASCII: ast columns are bytes, ours are characters
    "        ...",  # 39 trivial
    "        return",  # 40 trivial
]
SOURCE = "\n".join(SOURCE_LINES) + "\n"


def test_line_candidates_are_exactly_the_non_trivial_code_lines():
    got = line_candidates(SOURCE)
    assert [c.start_line for c in got] == [
        3, 6, 7, 11, 14, 17, 18, 19, 20, 21, 25, 26, 28, 31, 32, 34, 35, 36, 38
    ]
    by_line = {c.start_line: c for c in got}
    assert by_line[19] == Candidate(19, 19, 8, "x, 2)  # trailing")
    assert by_line[28] == Candidate(28, 28, 4, "return y")
    assert by_line[20].ground_truth == "z = 1; w = 2"
    assert by_line[21].ground_truth == 'text = """'
    assert by_line[38] == Candidate(38, 38, 8, 'label = "héllo"')


def test_stmt_candidates_are_whole_simple_statements_inside_functions():
    got = stmt_candidates(SOURCE)
    assert got == [
        Candidate(17, 17, 8, "return None"),
        Candidate(18, 19, 4, "y = compute(\n        x, 2)"),
        Candidate(20, 20, 4, "z = 1"),  # ``w = 2`` does not start its line
        Candidate(21, 23, 4, 'text = """\ninside string\n"""'),
        Candidate(25, 25, 8, "y += 1"),
        Candidate(28, 28, 4, "return y"),
        Candidate(35, 37, 8, "self.v = [\n            1,\n        ]"),
        Candidate(38, 38, 8, 'label = "héllo"'),
    ]


def test_stmt_candidates_reach_except_match_and_async_bodies():
    source = (
        "async def g(v):\n"
        "    match v:\n"
        "        case 1:\n"
        "            a = 1\n"
        "    try:\n"
        "        pass\n"
        "    except OSError as exc:\n"
        "        log(exc)\n"
        "    async with lock:\n"
        "        await go()\n"
        "    def inner():\n"
        "        return 2\n"
        "top = 1\n"
    )
    assert [(c.start_line, c.ground_truth) for c in stmt_candidates(source)] == [
        (4, "a = 1"), (8, "log(exc)"), (10, "await go()"), (12, "return 2"),
    ]


def test_a_line_starting_an_fstring_is_code_but_its_continuation_is_not():
    source = 'def h(n):\n    msg = f"""{n}\n    done"""\n    return msg\n'
    assert [c.start_line for c in line_candidates(source)] == [1, 2, 4]


def test_source_problem_refuses_crlf_and_unparsable_files():
    assert source_problem("x = 1\r\ny = 2\r\n") == "has CR line endings"
    assert source_problem("def broken(:\n").startswith("does not parse (SyntaxError")
    assert source_problem("x = 1\n") is None


def test_char_col_converts_ast_byte_columns():
    assert char_col('s = "é"; t', 10) == 9
