"""What a run measured and how it is written down: measurements with units, limits and verdicts
(`measurements`), how a person reads one (`view`), and JUnit with testcase properties (`junit`)."""
