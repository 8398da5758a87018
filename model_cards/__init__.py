"""Model-card templates (Jinja2), one per SOUSA task over `base.md`; filled by `sousa_hf.model_card`."""
