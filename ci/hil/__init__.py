"""The HIL framework: rigs, drivers, emulators, measurements, the pytest plugin."""
