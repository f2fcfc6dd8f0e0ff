"""The CDS Hooks 2.0 wire: request and response models, validated at the edge."""
