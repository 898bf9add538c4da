"""Plain Locust baseline for benchmarks/load_generator.py: FastHttpUser, no wait, no recording."""

from locust import FastHttpUser, constant, task


class PlainUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def calibrate(self) -> None:
        self.client.get("/calibrate")
