"""Stage 2, the server: launching and stopping vLLM processes; tiny local models."""
