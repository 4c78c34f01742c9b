"""Running the grid: planning, one job, the shared worker loop, job state and the executors."""
