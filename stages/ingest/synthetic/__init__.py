"""``synthetic://``: a seeded, labelled generator of realistic Zeek conn traffic with attack scenarios.

A room of its own beside the format readers: ``generator`` cuts the period into slices and
turns them into canonical RecordBatches, ``traffic`` makes the benign flows and ``attacks``
the attack episodes. Nothing here reads files, and no reader imports this package.
"""

from .generator import SCENARIOS, SLICE_ROWS, generate, generate_batches, parse_uri, to_batch

__all__ = ["SCENARIOS", "SLICE_ROWS", "generate", "generate_batches", "parse_uri", "to_batch"]
