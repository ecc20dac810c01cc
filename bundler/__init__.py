"""gpubundle's connected side: resolve, download, sign and pack a bundle."""
