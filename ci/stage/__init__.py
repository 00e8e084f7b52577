"""Running one stage, as `hilci stage NAME` does in a Jenkins pod and under `hilci run`: the context a stage
body gets, its JUnit, the tools it starts as child processes, its progress file, and the pytest plugin that
turns an abort into a clean end (`interrupt`)."""
