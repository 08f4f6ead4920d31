"""asv benchmarks of fastbp (the workloads of the speed issue); see ../README.md."""
