"""The stages hilci brings: `build` (wheel, lint, unit tests), `hil` (pytest on a rig) and `report` (merged JUnit,
HTML, regression gates), with the typed settings of their hilci.yaml sections. A project's own stages live in
its own modules and are named the same way (`entry = "module:function"`)."""
