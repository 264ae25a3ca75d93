from odoo.tests import TransactionCase, tagged

from .common import HubCaseMixin

ACTIONS = [
    "ps_integration_hub.ps_hub_event_exception_action",
    "ps_integration_hub.ps_hub_event_action",
    "ps_integration_hub.ps_hub_event_monitoring_action",
    "ps_integration_hub.ps_hub_connector_action",
    "ps_integration_hub.ps_hub_binding_action",
    "ps_integration_hub.ps_hub_audit_log_action",
    "ps_integration_hub.ps_hub_ownership_rule_action",
    "ps_integration_hub.ps_hub_mapping_action",
    "ps_integration_hub.ps_hub_value_map_action",
]


@tagged("post_install", "-at_install")
class TestViews(HubCaseMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()

    def test_every_action_renders_for_its_users(self):
        for user in (self.user_hub, self.user_finance, self.user_manager):
            for xmlid in ACTIONS:
                action = self.env.ref(xmlid)
                if action.res_model == "ps.hub.connector" and user == self.user_hub:
                    continue  # configuration menus are the manager's
                with self.subTest(user=user.login, action=xmlid):
                    model = self.env[action.res_model].with_user(user)
                    views = [(False, mode) for mode in action.view_mode.split(",")] + [(False, "search")]
                    result = model.get_views(views)
                    self.assertEqual(set(result["views"]), {mode for _id, mode in views})
        wizard = self.env["ps.hub.event.action.wizard"].with_user(self.user_finance)
        self.assertIn("form", wizard.get_views([(False, "form")])["views"])
        dry_run = self.env["ps.hub.mapping.dry.run"].with_user(self.user_manager)
        self.assertIn("form", dry_run.get_views([(False, "form")])["views"])

    def test_desk_menu_visible_to_finance(self):
        menu = self.env.ref("ps_integration_hub.ps_hub_event_exception_menu")
        visible = self.env["ir.ui.menu"].with_user(self.user_finance)._visible_menu_ids()
        self.assertIn(menu.id, visible)
        config = self.env.ref("ps_integration_hub.ps_hub_configuration_menu")
        self.assertNotIn(config.id, visible)
