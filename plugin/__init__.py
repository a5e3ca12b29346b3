"""The drop-in HTTP endpoint, the search pipeline and the search backends (`shoprank.plugin`)."""
