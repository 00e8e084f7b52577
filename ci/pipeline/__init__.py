"""The pipeline as data: stages, boards and their validation (`model`), hilci.yaml read through typed
settings (`config`), and finding the project and its pipeline from any folder (`project`).

Nothing here runs a stage; everything above reads the pipeline from here.
"""
