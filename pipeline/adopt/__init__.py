"""Adoption by any module's repository: `pipeline init` (detect modules and a crate, write
matrix.yml) and `pipeline doctor` (check and set up the host).

May import model, debian, results, plan and run (below it); only cli imports it.
"""
