"""Adding Conveyor to a team's own Kedro project (``conveyor init``) and checking it
(``conveyor doctor``): the two commands a new user meets first, so their errors name the file and
the field to fix."""
