from mccom_core.retrieval.code_tokens import code_tokens, line_tokens, split_identifier


def test_split_identifier_snake_camel_acronyms_and_digits():
    assert split_identifier("value") == ("value",)
    assert split_identifier("load_model") == ("load_model", "load", "model")
    assert split_identifier("getHTTPResponseCode") == (
        "gethttpresponsecode", "get", "http", "response", "code",
    )
    assert split_identifier("HTTPServer") == ("httpserver", "http", "server")
    assert split_identifier("__init__") == ("__init__", "init")
    assert split_identifier("utf8_decode") == ("utf8_decode", "utf", "decode")
    assert split_identifier("MAX_SIZE") == ("max_size", "max", "size")


def test_keywords_punctuation_and_numbers_are_dropped():
    text = "def load_model(spec): return HTTPServer(spec) if x > 10 else None"
    assert code_tokens(text) == [
        "load_model", "load", "model", "spec", "httpserver", "http", "server", "spec", "x",
    ]
    assert code_tokens("+= () [] {} 42 3.14 ... # !") == []


def test_comments_and_strings_contribute_words():
    assert code_tokens('x = "open the fileHandle"  # and close it') == [
        "x", "open", "the", "filehandle", "file", "handle", "close", "it",
    ]


def test_custom_keywords_and_line_tokens():
    assert code_tokens("function foo() { return bar; }", keywords={"function", "return"}) == [
        "foo", "bar",
    ]
    assert line_tokens(["import os", "", "os.path.join(a, b)"]) == [
        ["os"], [], ["os", "path", "join", "a", "b"],
    ]
