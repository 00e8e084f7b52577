"""hilci: CI with hardware in the loop."""
