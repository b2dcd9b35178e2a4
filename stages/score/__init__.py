"""score: the champion applied to new flows — alerts, incidents, drift."""
