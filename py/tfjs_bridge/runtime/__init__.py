"""The Node side seen from Python: Node processes, the long-lived worker and
its pool, the runtimes (backend x format) table, the native addon."""
