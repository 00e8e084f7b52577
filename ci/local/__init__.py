"""The local engine: `hilci run` (runner, progress line, stage cache) and the HTML report."""
