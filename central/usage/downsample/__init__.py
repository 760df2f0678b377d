"""Downsampling on InfluxDB 1.x, so a year of data stays fast (``qihe stats-setup``).

Three retention policies in the consumer's database (why these, and how to read them, in
``docs/downsampling.md``):

========  ========  ============  =====================================================
policy    keeps     shard groups  holds
========  ========  ============  =====================================================
raw       90 days   1 day         every reading as the consumer wrote it (the default)
hourly    2 years   1 week        one point per series and UTC hour, by continuous query
daily     forever   30 days       one point per series and local (Asia/Shanghai) day
========  ========  ============  =====================================================

One module per job: ``plan`` (the policies, tiers and rollups as data), ``ql`` (InfluxQL text
as the server prints it), ``apply`` (compare the plan with a server, and bring it there),
``backfill`` (the rollups of past days), ``cli`` (the command). Every ``qihe`` command imports
``cli``, so this package imports nothing itself.
"""
