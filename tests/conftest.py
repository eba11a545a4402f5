pytest_plugins = ["ews_sim.testing"]
