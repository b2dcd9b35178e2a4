"""The Argo workflow of the pipeline: Hera definition, compile/validate/submit and a local executor."""
