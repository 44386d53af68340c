"""Command-line tools: model table, predict, convert, export, bench, CAM."""
