"""The notifications role: follow the event stream, tell people of mentions and DMs.

recipients.py decides who hears of a message (pure); consumer.py follows the stream,
records what a batch produced with the consumer's position in one transaction and
pushes each new notification to its user's live sockets; frames.py is the pushed
frame. The REST side is chatd/transport/rest_notifications.py.
"""
