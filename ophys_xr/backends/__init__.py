"""Readers that turn session files into the session Dataset."""
