"""The ground floor: errors, paths, progress reporting, versions, a quiet
TensorFlow import. Imports nothing else of tfjs_bridge."""
