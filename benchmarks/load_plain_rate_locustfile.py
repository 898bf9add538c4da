"""Plain Locust at a fixed rate for benchmarks/load_generator.py: FastHttpUser, 20 req/s per user, nothing
recorded (the open model's per-user rate, so ``-u rate/20`` users give the same rate with the same users)."""

from locust import FastHttpUser, constant_throughput, task


class PlainRateUser(FastHttpUser):
    wait_time = constant_throughput(20)

    @task
    def calibrate(self) -> None:
        self.client.get("/calibrate")
