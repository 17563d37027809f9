# aiosmtpd handler for the tests: `python3 -m aiosmtpd -n -l ADDR:PORT -c smtp_spool.Spool DIR`
# writes each message it accepts, its envelope first, to DIR/NNNN.eml.
import os


class Spool:
    """Writes each message, its envelope first, to DIR/NNNN.eml."""

    def __init__(self, directory):
        self.dir = directory
        self.n = 0

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(*args)

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.dir, "%04d.eml" % self.n)
        head = "X-Envelope-From: %s\r\nX-Envelope-To: %s\r\nX-Helo: %s\r\n" % (
            envelope.mail_from, ",".join(envelope.rcpt_tos), session.host_name)
        with open(path + ".tmp", "wb") as f:
            f.write(head.encode())
            f.write(envelope.original_content)
        os.rename(path + ".tmp", path)
        return "250 OK"
