from selfinstruct.cli.main import run

run()
