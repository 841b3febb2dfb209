"""What each LLM chapter runs and says: its profiles, checked settings and variants, the experiment that runs
them, the chapters' plots and the findings computed from the runs, and the ``colab`` profile's planning."""
