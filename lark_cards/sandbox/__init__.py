"""A local stand-in for the Feishu Open Platform: for end-to-end tests and for trying the bot
without a Feishu app or network."""
