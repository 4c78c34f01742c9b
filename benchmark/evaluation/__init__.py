"""Turning a backbone into numbers: device and precision, input conventions, frozen
features, metrics, profiles, training recipes and the protocols.
"""
