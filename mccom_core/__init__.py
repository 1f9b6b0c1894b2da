"""mccom_core: model cascading for code completion (MCCom) and self-testing code-generation cascades.

Grouped by system, one module per concept, imports flowing one way:

* base modules here: ``errors``, ``paths``, ``jsonl``, ``provenance``, ``papers``;
* ``lm``: completion models, prompts, decoding with draft verification, drafters;
* ``retrieval``: repository windows, BM25, both rounds' queries and fusion, prompt assembly;
* ``cascade``: tasks from real repositories, the MCCom branches, runner, policies, users, metrics;
* ``ladder``: the self-testing cascade (generations, sandbox, replay, costs, plan search);
* ``lab``: analyses, figures, widgets, the quickstart and the papermill reproduction;
* ``cli``: the ``mccom`` command, a thin wrapper over the rest.
"""

from mccom_core.errors import MccomError

__version__ = "0.1.0"
__all__ = ["MccomError", "__version__"]
