"""The compute network: providers, jobs, and DiLoCo training rounds on Flower."""
