"""What a Nova does next: the work queue, wake signals, messages between Novas, and the prompts that carry them."""
