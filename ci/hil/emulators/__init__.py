"""Device emulators, one process each; a rig device's emulator comes from its kind's registration."""
