"""The HTML report and the facts it shows per stage: written by the `report` stage and at the end of
`hilci run`."""
