from tests.adversarial.harness import curious_factory  # noqa: F401  (fixture)
