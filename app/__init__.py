"""PersonaScope: inspect and steer villain-persona SAE latents in base and fine-tuned models."""

__version__ = "0.1.0"
