"""The supervisor (`torchsm run`): admission, the loop, settling and recovering sessions, the service unit."""
