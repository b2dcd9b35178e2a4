"""A local executor for Argo workflows: runs a compiled manifest on this machine.

One small module per concern, in the spirit of ``kfp/local``:

- ``manifest``: loads a Workflow/WorkflowTemplate and refuses, by field path, what it does not support;
- ``policy``: the table of supported, ignored (cluster-only) and refused fields;
- ``refusals``: what is refused for its value (``{{=...}}``, unmappable paths, ...), also found before running;
- ``templating``: ``{{...}}`` substitution; ``expr``: the ``depends``, ``when`` and retry languages;
- ``dag``: scheduling by ``depends``/``dependencies``, failFast and the DAG phase;
- ``artifacts``: the artifact repository (a local directory or S3);
- ``runtimes``: how a container runs (``subprocess`` or ``docker``) behind ``run(task) -> Result``;
- ``pod``: one container node: inputs, attempts with ``retryStrategy``, outputs;
- ``engine``: the workflow as a whole; ``tree``: the ``argo get``-like view; ``cli``: ``run-local``.

It knows nothing of the project that uses it: the workspace the subprocess runtime runs in,
the default paths and how to build missing images come in through ``RunOptions`` and
``cli.RunLocalDefaults`` (this repository's are in ``workflows/local/project.py``).

Nothing runs at import; heavy libraries (yaml, boto3) are imported where used.
"""
