"""Instructor tooling: batch runs with papermill, the report, the benchmark and the command line.

The notebooks never import this subpackage; the teaching library is the rest of `course`.
"""
