"""Result records -> the reports' tables and figures.

Modules, lowest first (each imports only those above it):
``published`` (the reports' figures and labels), ``records`` (loading and merging this host's
and imported records), ``context`` (what a table builder is given, cell states, notes),
``accuracy`` / ``throughput`` / ``reproduction`` (one builder per table), ``render``
(Markdown, CSV, provenance file and HTML view), ``plots`` (the figures).
"""
