"""LLM policy, critic heads and the learning algorithms (SAC-GLAM, PPO-GLAM)."""
