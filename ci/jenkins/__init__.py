"""The Jenkins side: the Jenkinsfile renderer and its checks, the REST client, its CLI and results."""
