"""The pipeline as an Airflow DAG: `hilci airflow` renders the one definition into dags/hilci_pipeline.py,
with the nightly soak (hilci.yaml `soak:`) as a second DAG, `hilci-soak`, in the same file.

`spec` turns the definition into plain data (tasks, their needs, pod specs; no Airflow needed), `dagfile`
writes and checks the DAG file, `dag` builds the DAG from that data (imports Airflow: the `airflow` extra),
`handoff` runs inside the pods (no Airflow there) and hands JUnit and the summary on through the store.
"""
