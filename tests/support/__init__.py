"""Test support code shared by test modules (tests import from here, never from each other or from bench/)."""
