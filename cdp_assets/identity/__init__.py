"""Identity resolution helpers in plain Python: the in-memory reference the warehouse graph is checked
against (`union_find`) and the benchmark's edge generator (`bench_graph`). The production identity
graph is computed in the warehouse by dbt (dbt_project/models/identity)."""
