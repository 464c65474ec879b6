"""Image-tile releases: reading and writing tiles, a public-bounded feature view, image audits and grids."""
