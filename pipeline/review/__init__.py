"""The ``ds.review`` accessor: tables, comparison, maps and plots of a result Dataset."""
