"""Buildbot integration: a BuildmasterConfig generated from matrix.yml.

`config.build_config()` is what master.cfg calls; `control` runs the embedded default
(`pipeline master start|stop|status`, `pipeline hook install`); `dashboard` is the
"Matrix" page (buildbot-wsgi-dashboards); `factory` a builder's steps (`steps`,
`transfer`, `bench`). `selection`, `settings`, `retention`, `forge` and `api` are plain
Python.
May import: every pipeline subpackage except the CLI (it sits on run/ and report/).
"""
