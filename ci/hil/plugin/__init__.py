"""pytest plugin (entry point `hilci`): `--rig`, device fixtures, health check, faults, locks and safe state.

Loaded for every pytest run, it stays silent until a session collects HIL tests (marked sensor, actuator or
latency): those demand `--rig`. `hooks` reads the options and rigs, `session` holds what serves them
(emulators, health, locks, safe state), `fixtures` hands devices to tests, `injection` applies faults,
`soak` loops the tests for `hilci soak`;
`hilci.hil.summary` prints the measurement table and writes the live progress of `hilci run`.
"""

pytest_plugins = ["hilci.hil.plugin.hooks", "hilci.hil.plugin.fixtures", "hilci.hil.plugin.soak", "hilci.hil.summary"]
