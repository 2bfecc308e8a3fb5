"""Local mode: the same observe and decide as the operator, acting on processes.

session.py is `queueworker local` (parse, connect, run), runner.py the poll
loop, pool.py the worker processes, view.py the live view, demo.py `queueworker demo`.
"""
