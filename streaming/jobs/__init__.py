"""ECE's Flink stream jobs: one PyFlink job, many pipelines, one JVM.

The machine has two cores, so every pipeline (card cache, and later market
activity/stats, notifications, chain reconciliation) is a module that adds its
operators to the same ``StreamExecutionEnvironment`` and the whole set runs as
one job on one local MiniCluster (``python -m streaming.jobs``). See
:mod:`streaming.jobs.registry` for how a pipeline plugs in.
"""
