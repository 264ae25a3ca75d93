from . import ps_hub_bench_floor
